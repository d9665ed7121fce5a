/**
 * server/registrar/loc_memory.c  Location backend "memory:"
 *
 * Owns nothing: the backend that stores nothing, for tests and for a
 * registrar service asked for a memory store (regsvc.c); the
 * working set lives in the store's memory anyway (location.c), so the
 * bindings last as long as the process. Exposes loc_backend_memory in
 * regpriv.h; uses only struct loc_backend (registrar.h).
 */
#include <re.h>
#include "registrar.h"
#include "regpriv.h"


static int mem_open(void **statep, const char *arg)
{
	(void)arg;
	*statep = NULL;

	return 0;
}


static int mem_load(void *state, const char *aor, loc_row_h *rowh,
		    void *arg)
{
	(void)state;
	(void)aor;
	(void)rowh;
	(void)arg;

	return 0;
}


static int mem_apply(void *state, const struct loc_op *opv, size_t opc)
{
	(void)state;
	(void)opv;
	(void)opc;

	return 0;
}


static void mem_close(void *state)
{
	(void)state;
}


const struct loc_backend loc_backend_memory = {
	.name  = "memory",
	.open  = mem_open,
	.load  = mem_load,
	.apply = mem_apply,
	.close = mem_close,
};

