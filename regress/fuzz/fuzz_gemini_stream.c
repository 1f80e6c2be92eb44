/*
 * fuzz_gemini_stream.c: the gemini API's stream, error and request code (fuzz_api.h).
 */

#define FUZZ_API	api_gemini
#define FUZZ_MODELS	0

#include "fuzz_api.h"
