/*
 * fuzz_anthropic_stream.c: the anthropic API's stream, error and request code (fuzz_api.h).
 */

#define FUZZ_API	api_anthropic
#define FUZZ_MODELS	0

#include "fuzz_api.h"
