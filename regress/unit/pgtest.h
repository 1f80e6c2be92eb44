/* pgtest.h: the storage tests' PostgreSQL target (pgtest.c). */
struct pg_result;

int		 pgtest_target(const char *, const char *, char *, size_t);
const char	*pgtest_password(void);
struct pg_result *pgtest_query(const char *, const char *);
long long	 pgtest_int(const char *, const char *);
