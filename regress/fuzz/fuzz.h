/*
 * fuzz.h: what the libFuzzer targets of regress/fuzz share: a reader
 * that takes structured values from the fuzzer's bytes, a quiet log,
 * and fatal() turned into a jump back to the target.
 */

#ifndef FUZZ_H
#define FUZZ_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* The fuzzer's input, consumed front to back. */
struct fin {
	const uint8_t	*p;
	size_t		 left;
};

void		 fin_init(struct fin *, const uint8_t *, size_t);
uint8_t		 fin_u8(struct fin *);
uint16_t	 fin_u16(struct fin *);
uint32_t	 fin_u32(struct fin *);
uint64_t	 fin_u64(struct fin *);
/* Up to max bytes, the length taken from the input; *lenp set. */
const uint8_t	*fin_bytes(struct fin *, size_t, size_t *);
/* A NUL-terminated copy of up to max bytes, in a static ring. */
const char	*fin_str(struct fin *, size_t);
const char	*fin_text(struct fin *, size_t);

/*
 * A message as a peer would send it: the payload is either built by
 * the target (well formed) or taken raw from the input.
 */
void		 fuzz_imsg(struct imsg *, uint32_t, const void *, size_t);
/* A payload from the input: raw, or u32 u64 str data fields. */
struct ibuf	*fin_payload(struct fin *);

/* Silence the log, stdout too if asked. */
void		 fuzz_quiet(int);

/* fatal() and fatalx() return here (link with --wrap=fatal,fatalx). */
extern jmp_buf	 fuzz_fatal_jmp;
extern int	 fuzz_fatal_armed;
extern int	 fuzz_fatals;

int		 LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#endif /* FUZZ_H */
