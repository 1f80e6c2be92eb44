/*
 * fuzz_gemini_models.c: the gemini API's model list parser (fuzz_api.h).
 */

#define FUZZ_API	api_gemini
#define FUZZ_MODELS	1

#include "fuzz_api.h"
