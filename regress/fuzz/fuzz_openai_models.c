/*
 * fuzz_openai_models.c: the openai API's model list parser (fuzz_api.h).
 */

#define FUZZ_API	api_openai
#define FUZZ_MODELS	1

#include "fuzz_api.h"
