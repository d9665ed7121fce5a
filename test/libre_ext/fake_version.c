/**
 * test/libre_ext/fake_version.c  Another libre version, for the refusal test
 *
 * LD_PRELOADed into the program by check_version.py: defines libre's
 * sys_libre_version_get() (<re_sys.h>) ahead of libre.so, returning
 * $FAKE_LIBRE_VERSION, so that the program's start-up check sees a
 * libre of another series without one being installed.
 */
#include <stdlib.h>

const char *sys_libre_version_get(void);


const char *sys_libre_version_get(void)
{
	const char *v = getenv("FAKE_LIBRE_VERSION");

	return v ? v : "0.0.0";
}
