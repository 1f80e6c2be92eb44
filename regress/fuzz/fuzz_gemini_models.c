/*
 * fuzz_gemini_models.c: a page of Gemini's model list
 * (gem_parse_models() in bridged/gemini.c), then what the provider
 * does with it: keep the chat models, sorted.
 */

#include <sys/types.h>

#include <stdlib.h>
#include <string.h>

#include "bridged.h"
#include "fuzz.h"

/* The target. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int	 init;
	struct gem_page	 pg;
	size_t		 i;

	if (!init) {
		fuzz_quiet(0);
		init = 1;
	}
	memset(&pg, 0, sizeof(pg));
	if (gem_parse_models((const char *)data, size, &pg) == 0) {
		for (i = 0; i < pg.nmodels; i++) {
			if (strnlen(pg.models[i].name, MODEL_MAX_LEN) ==
			    MODEL_MAX_LEN)
				abort();
			/* What the list keeps must be a plain name. */
			if (!gem_valid_model_name(pg.models[i].name))
				abort();
			(void)gem_model_is_chat(&pg.models[i]);
		}
		if (pg.nmodels > 1)
			qsort(pg.models, pg.nmodels, sizeof(pg.models[0]),
			    gem_model_cmp);
	}
	gem_page_free(&pg);
	return (0);
}
