/**
 * server/libre_ext/version.c  The libre series the program runs on
 *
 * Owns the run-time check of libre's version (see libre_ext.h for why
 * there is one). Exposes libre_ext_version_check(), a pure function the
 * unit tests drive with any version string, and
 * libre_ext_version_require(), which main() calls first of all with
 * what the loaded libre.so reports (sys_libre_version_get(), in
 * <re_sys.h>: the VERSION libre was built with).
 */
#include <errno.h>
#include <stdio.h>
#include <re.h>
#include "libre_ext.h"

#if !defined(LIBRE_EXT_MAJOR) || !defined(LIBRE_EXT_MINOR)
#error "LIBRE_EXT_MAJOR and LIBRE_EXT_MINOR come from meson.build"
#endif


/* A decimal number at *pp (digits only), moving *pp past it */
static bool number(const char **pp, unsigned *v)
{
	const char *p = *pp;
	unsigned n = 0;

	if (*p < '0' || *p > '9')
		return false;

	while (*p >= '0' && *p <= '9') {
		if (n > 100000)
			return false;
		n = n * 10 + (unsigned)(*p++ - '0');
	}

	*pp = p;
	*v = n;

	return true;
}


int libre_ext_version_check(const char *version, char *msg, size_t sz)
{
	const char *p = version;
	unsigned major, minor;

	/* "MAJOR.MINOR" then the end or '.' (patch and beyond: any) */
	if (p && number(&p, &major) && *p++ == '.' && number(&p, &minor) &&
	    (*p == '\0' || *p == '.') &&
	    major == (unsigned)LIBRE_EXT_MAJOR &&
	    minor == (unsigned)LIBRE_EXT_MINOR)
		return 0;

	if (msg && sz)
		(void)snprintf(msg, sz, "libre %s found, %u.%u.x required "
			       "(server/libre_ext/ replaces functions of "
			       "that series and relies on its internals)",
			       version ? version : "(unknown version)",
			       (unsigned)LIBRE_EXT_MAJOR,
			       (unsigned)LIBRE_EXT_MINOR);

	return ENOTSUP;
}


int libre_ext_version_require(void)
{
	char msg[256];
	int err;

	err = libre_ext_version_check(sys_libre_version_get(), msg,
				      sizeof(msg));
	if (err)
		(void)fprintf(stderr, "sipstack: %s\n", msg);

	return err;
}
