/*
 * gate.c: the worker's generations between the session and the
 * provider. Each waits, held here, until storage has admitted it
 * against the identity's limits; then it goes upstream and is timed
 * (first byte, whole answer) for the metrics.
 */

#include <sys/types.h>
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"

struct gate_msg {
	TAILQ_ENTRY(gate_msg)	 entry;
	uint32_t		 type;
	struct ibuf		*b;
};

static TAILQ_HEAD(, gate)	 gates = TAILQ_HEAD_INITIALIZER(gates);

/* A new generation, held until admitted; NULL if out of memory. */
struct gate *
gate_new(uint32_t id, const char *model, uint64_t now)
{
	struct gate	*g;

	if ((g = calloc(1, sizeof(*g))) == NULL)
		return (NULL);
	g->id = id;
	(void)strlcpy(g->model, model, sizeof(g->model));
	g->t0 = now;
	TAILQ_INIT(&g->held);
	TAILQ_INSERT_TAIL(&gates, g, entry);
	return (g);
}

/* Keep one message for the provider (b is taken, freed on failure). */
int
gate_hold(struct gate *g, uint32_t type, struct ibuf *b)
{
	struct gate_msg	*m;

	if (b == NULL || (m = calloc(1, sizeof(*m))) == NULL) {
		ibuf_free(b);
		return (-1);
	}
	m->type = type;
	m->b = b;
	TAILQ_INSERT_TAIL(&g->held, m, entry);
	return (0);
}

/* The generation of a request id, if it is under way. */
struct gate *
gate_find(uint32_t id)
{
	struct gate	*g;

	if (id == 0)
		return (NULL);
	TAILQ_FOREACH(g, &gates, entry)
		if (g->id == id)
			return (g);
	return (NULL);
}

/* Drop what is held; the messages were not sent. */
static void
gate_clear(struct gate *g)
{
	struct gate_msg	*m;

	while ((m = TAILQ_FIRST(&g->held)) != NULL) {
		TAILQ_REMOVE(&g->held, m, entry);
		if (m->b != NULL)
			explicit_bzero(ibuf_data(m->b), ibuf_left(m->b));
		ibuf_free(m->b);
		free(m);
	}
}

/* Admitted: send what is held to the provider, in order. */
int
gate_release(struct gate *g, struct channel *provider, uint64_t now)
{
	struct gate_msg	*m;
	int		 rv = 0;

	g->admitted = 1;
	g->t0 = now;
	while (rv == 0 && (m = TAILQ_FIRST(&g->held)) != NULL) {
		TAILQ_REMOVE(&g->held, m, entry);
		if (channel_compose(provider, m->type, 0, -1, ibuf_data(m->b),
		    ibuf_left(m->b)) == -1)
			rv = -1;
		explicit_bzero(ibuf_data(m->b), ibuf_left(m->b));
		ibuf_free(m->b);
		free(m);
	}
	gate_clear(g);
	return (rv);
}

/* The first byte of the answer came. */
void
gate_chunk(struct gate *g, uint64_t now)
{
	if (g->first == 0)
		g->first = now > g->t0 ? now - g->t0 : 1;
}

/* Forget a generation. */
void
gate_free(struct gate *g)
{
	gate_clear(g);
	TAILQ_REMOVE(&gates, g, entry);
	free(g);
}
