/*
 * fuzz_anthropic_models.c: the anthropic API's model list parser (fuzz_api.h).
 */

#define FUZZ_API	api_anthropic
#define FUZZ_MODELS	1

#include "fuzz_api.h"
