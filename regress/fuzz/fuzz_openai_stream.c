/*
 * fuzz_openai_stream.c: the openai API's stream, error and request code (fuzz_api.h).
 */

#define FUZZ_API	api_openai
#define FUZZ_MODELS	0

#include "fuzz_api.h"
