/*
 * config.c: the configuration travels from the parent to each child
 * as IMSG_CFG_* messages; the child rebuilds it and swaps it in whole
 * when IMSG_CFG_DONE arrives.
 */

#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bridged.h"

/* An empty configuration with the lists ready. */
struct bridged_conf *
config_new(void)
{
	struct bridged_conf	*conf;

	if ((conf = calloc(1, sizeof(*conf))) == NULL)
		return (NULL);
	TAILQ_INIT(&conf->listeners);
	TAILQ_INIT(&conf->providers);
	TAILQ_INIT(&conf->roles);
	return (conf);
}

/* Free a configuration and everything it holds. */
void
config_free(struct bridged_conf *conf)
{
	struct listen_conf	*l;
	struct provider_conf	*p;
	struct role_conf	*r;

	if (conf == NULL)
		return;
	if (conf->db_password != NULL)
		freezero(conf->db_password, strlen(conf->db_password));
	while ((l = TAILQ_FIRST(&conf->listeners)) != NULL) {
		TAILQ_REMOVE(&conf->listeners, l, entry);
		free(l);
	}
	while ((r = TAILQ_FIRST(&conf->roles)) != NULL) {
		TAILQ_REMOVE(&conf->roles, r, entry);
		free(r);
	}
	while ((p = TAILQ_FIRST(&conf->providers)) != NULL) {
		TAILQ_REMOVE(&conf->providers, p, entry);
		explicit_bzero(p, sizeof(*p));
		free(p);
	}
	free(conf);
}

/*
 * Queue the whole configuration (and TLS material, for a worker; the
 * database password, for storage).
 */
int
config_send(struct channel *ch, const struct bridged_conf *conf,
    const struct tls_material *tls, const char *db_password)
{
	struct provider_conf	*p;
	struct role_conf	*r;
	struct ibuf		*b;

	if (channel_compose(ch, IMSG_CFG_GLOBAL, 0, -1, &conf->g,
	    sizeof(conf->g)) == -1)
		return (-1);
	TAILQ_FOREACH(p, &conf->providers, entry)
		if (channel_compose(ch, IMSG_CFG_PROVIDER, 0, -1, p,
		    sizeof(*p)) == -1)
			return (-1);
	TAILQ_FOREACH(r, &conf->roles, entry)
		if (channel_compose(ch, IMSG_CFG_ROLE, 0, -1, r,
		    sizeof(*r)) == -1)
			return (-1);
	if (tls != NULL && tls->loaded) {
		if ((b = channel_create(ch, IMSG_CFG_TLS, 0,
		    tls->certlen + tls->keylen + 64)) == NULL ||
		    ibuf_add_data(b, tls->cert, tls->certlen) == -1 ||
		    ibuf_add_data(b, tls->key, tls->keylen) == -1 ||
		    ibuf_add_data(b, tls->ticket_key,
		    sizeof(tls->ticket_key)) == -1) {
			ibuf_free(b);
			return (-1);
		}
		if (channel_send(ch, b) == -1)
			return (-1);
	}
	if (db_password != NULL) {
		if ((b = channel_create(ch, IMSG_CFG_DB_PASSWORD, 0,
		    strlen(db_password) + 8)) == NULL ||
		    ibuf_add_str(b, db_password) == -1) {
			ibuf_free(b);
			return (-1);
		}
		if (channel_send(ch, b) == -1)
			return (-1);
	}
	return (channel_compose(ch, IMSG_CFG_DONE, 0, -1, NULL, 0));
}

/* IMSG_CFG_TLS: the certificate, key and ticket keys, copied. */
static int
config_recv_tls(struct tls_material *tls, struct imsg *imsg)
{
	struct ireader	 ir;
	const void	*cert, *key, *ticket;
	size_t		 certlen, keylen, ticketlen;

	ir_init(&ir, imsg);
	cert = ir_data(&ir, &certlen);
	key = ir_data(&ir, &keylen);
	ticket = ir_data(&ir, &ticketlen);
	if (ir_end(&ir) == -1 || ticketlen != TLS_TICKET_KEY_LEN ||
	    certlen == 0 || keylen == 0)
		return (-1);
	tls_material_wipe(tls);
	if ((tls->cert = malloc(certlen)) == NULL ||
	    (tls->key = malloc(keylen)) == NULL) {
		tls_material_wipe(tls);
		return (-1);
	}
	memcpy(tls->cert, cert, certlen);
	tls->certlen = certlen;
	memcpy(tls->key, key, keylen);
	tls->keylen = keylen;
	memcpy(tls->ticket_key, ticket, TLS_TICKET_KEY_LEN);
	tls->loaded = 1;
	return (0);
}

/* The database password, for storage alone. */
static int
config_recv_password(struct bridged_conf *conf, struct imsg *imsg)
{
	struct ireader	 ir;
	const char	*pw;

	ir_init(&ir, imsg);
	pw = ir_str(&ir);
	if (ir_end(&ir) == -1 || *pw == '\0' ||
	    (conf->db_password = strdup(pw)) == NULL)
		return (-1);
	return (0);
}

/* Force the strings of a struct from the parent to end. */
#define TERMINATE(s)	((s)[sizeof(s) - 1] = '\0')

/*
 * Take one IMSG_CFG_* message: 1 when a whole new configuration has
 * replaced *cur, 0 when more is to come, -1 on a malformed message.
 */
int
config_recv(struct bridged_conf **cur, struct bridged_conf **pending,
    struct tls_material *tls, struct imsg *imsg)
{
	struct provider_conf	*p;
	struct role_conf	*r;
	struct global_conf	*g;
	size_t			 i;

	switch (imsg->hdr.type) {
	case IMSG_CFG_GLOBAL:
		if (imsg->datalen != sizeof(struct global_conf))
			return (-1);
		config_free(*pending);
		if ((*pending = config_new()) == NULL)
			return (-1);
		g = &(*pending)->g;
		memcpy(g, imsg->data, sizeof(*g));
		TERMINATE(g->tls_cert);
		TERMINATE(g->tls_key);
		TERMINATE(g->user);
		TERMINATE(g->chroot);
		TERMINATE(g->database);
		TERMINATE(g->db_password_file);
		TERMINATE(g->socket);
		TERMINATE(g->tokens);
		return (0);
	case IMSG_CFG_PROVIDER:
		if (*pending == NULL ||
		    imsg->datalen != sizeof(struct provider_conf) ||
		    (p = malloc(sizeof(*p))) == NULL)
			return (-1);
		memcpy(p, imsg->data, sizeof(*p));
		TERMINATE(p->name);
		TERMINATE(p->url);
		TERMINATE(p->key_file);
		TERMINATE(p->key_env);
		TERMINATE(p->model);
		TERMINATE(p->fallback);
		for (i = 0; i < PROVIDER_MODELS_MAX; i++)
			TERMINATE(p->models[i]);
		if (p->nmodels < 0 || p->nmodels > PROVIDER_MODELS_MAX) {
			free(p);
			return (-1);
		}
		TAILQ_INSERT_TAIL(&(*pending)->providers, p, entry);
		return (0);
	case IMSG_CFG_ROLE:
		if (*pending == NULL ||
		    imsg->datalen != sizeof(struct role_conf) ||
		    (r = malloc(sizeof(*r))) == NULL)
			return (-1);
		memcpy(r, imsg->data, sizeof(*r));
		TERMINATE(r->name);
		TERMINATE(r->description);
		TERMINATE(r->system);
		TERMINATE(r->model);
		TAILQ_INSERT_TAIL(&(*pending)->roles, r, entry);
		return (0);
	case IMSG_CFG_TLS:
		if (*pending == NULL || tls == NULL)
			return (-1);
		return (config_recv_tls(tls, imsg));
	case IMSG_CFG_DB_PASSWORD:
		if (*pending == NULL || (*pending)->db_password != NULL)
			return (-1);
		return (config_recv_password(*pending, imsg));
	case IMSG_CFG_DONE:
		if (*pending == NULL || imsg->datalen != 0)
			return (-1);
		config_free(*cur);
		*cur = *pending;
		*pending = NULL;
		return (1);
	}
	return (-1);
}

/* Wipe and free key material once libtls holds what it needs. */
void
tls_material_wipe(struct tls_material *tls)
{
	freezero(tls->cert, tls->certlen);
	freezero(tls->key, tls->keylen);
	explicit_bzero(tls, sizeof(*tls));
}
