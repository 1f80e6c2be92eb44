/* pgtest.h: the storage tests' PostgreSQL target (pgtest.c). */
int		 pgtest_target(const char *, const char *, char *, size_t);
long long	 pgtest_int(const char *, const char *);
