/*
 * json_arena.c: jansson's memory while the provider reads one event of
 * a streamed answer. An event is parsed into a tree of objects, keys and
 * strings (about sixty allocations for one Gemini event) and freed
 * whole before the next; inside json_arena_open and json_arena_close
 * they are cut from one block, used again for every event, instead of
 * a malloc and a free each. What does not fit, and everything outside
 * an event, is malloc's. The block is wiped when the event is closed:
 * it held the answer's text.
 *
 * Nothing jansson allocates in an event may outlive it: the parsers of
 * the API files release their tree before they return (xfer_event
 * opens and closes around one of them).
 */

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bridged.h"

#define JSON_ARENA_SIZE	(64 * 1024)
#define JSON_ARENA_ALIGN 16

static struct {
	union {
		max_align_t	 align;
		unsigned char	 bytes[JSON_ARENA_SIZE];
	}		 block;
	size_t		 used;		/* bytes handed out in this event */
	size_t		 peak;		/* the most of the last event */
	int		 open;
} arena;

/* jansson's malloc: from the block in an event while it lasts. */
static void *
arena_malloc(size_t n)
{
	size_t	 need;
	void	*p;

	if (arena.open && n > 0 && n <= JSON_ARENA_SIZE) {
		need = (n + JSON_ARENA_ALIGN - 1) &
		    ~(size_t)(JSON_ARENA_ALIGN - 1);
		if (need <= JSON_ARENA_SIZE - arena.used) {
			p = arena.block.bytes + arena.used;
			arena.used += need;
			return (p);
		}
	}
	return (malloc(n));
}

/* jansson's free: the block's memory comes back at the event's end. */
static void
arena_free(void *p)
{
	uintptr_t	 a = (uintptr_t)p, b = (uintptr_t)arena.block.bytes;

	if (a >= b && a < b + JSON_ARENA_SIZE)
		return;
	free(p);
}

/* Give jansson the arena's allocator, before it allocates anything. */
void
json_arena_init(void)
{
	json_set_alloc_funcs(arena_malloc, arena_free);
}

/* An event begins: jansson allocates from the block. */
void
json_arena_open(void)
{
	arena.used = 0;
	arena.open = 1;
}

/* The event is done and its tree freed: wipe what it used. */
void
json_arena_close(void)
{
	explicit_bzero(arena.block.bytes, arena.used);
	arena.peak = arena.used;
	arena.used = 0;
	arena.open = 0;
}

/* Bytes of the block the last event used (for the tests). */
size_t
json_arena_peak(void)
{
	return (arena.peak);
}
