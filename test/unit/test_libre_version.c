/**
 * test/unit/test_libre_version.c  The libre version check (TAP output)
 *
 * server/libre_ext/version.c: libre_ext_version_check() accepts the
 * series meson.build requires (LIBRE_EXT_MAJOR.LIBRE_EXT_MINOR.x) and
 * refuses everything else with a message naming what was found and
 * what is required; the libre this test runs on passes. The refusal of
 * the program itself (main() with another libre) is tested in
 * test/libre_ext (an LD_PRELOADed sys_libre_version_get).
 */
#include <errno.h>
#include <string.h>
#include <re.h>
#include "libre_ext.h"
#include "testutil.h"


#define STR_(x) #x
#define STR(x) STR_(x)
#define SERIES STR(LIBRE_EXT_MAJOR) "." STR(LIBRE_EXT_MINOR)


static bool refused(const char *version, const char *found)
{
	char msg[256] = "";
	char want[128];

	(void)re_snprintf(want, sizeof(want), "libre %s found, %s.x required",
			  found, SERIES);

	return libre_ext_version_check(version, msg, sizeof(msg)) == ENOTSUP
		&& strstr(msg, want) == msg;
}


int main(void)
{
	static const char *bad[] = {
		"",                     /* empty */
		"?",                    /* libre built without VERSION */
		STR(LIBRE_EXT_MAJOR),   /* no minor */
		SERIES "-rc1",          /* minor followed by junk */
		SERIES "0.0",           /* 1.10.0: another minor */
		STR(LIBRE_EXT_MAJOR) "." STR(LIBRE_EXT_MINOR) "1",
		"0." STR(LIBRE_EXT_MINOR) ".0",
		"9" STR(LIBRE_EXT_MAJOR) "." STR(LIBRE_EXT_MINOR) ".0",
		"v" SERIES ".0",
	};
	const unsigned maj = LIBRE_EXT_MAJOR, min = LIBRE_EXT_MINOR;
	char msg[256], v[32];
	size_t i;
	bool all = true;

	CHECK(libre_ext_version_check(SERIES ".0", msg, sizeof(msg)) == 0,
	      "the required series, patch 0, passes");
	CHECK(libre_ext_version_check(SERIES ".17", NULL, 0) == 0,
	      "any patch level of the series passes");
	CHECK(libre_ext_version_check(SERIES, NULL, 0) == 0,
	      "MAJOR.MINOR alone passes");
	CHECK(libre_ext_version_check(sys_libre_version_get(), NULL, 0) == 0,
	      "the libre this test runs on passes");
	CHECK(libre_ext_version_require() == 0,
	      "libre_ext_version_require() on it: 0");

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		if (!refused(bad[i], bad[i])) {
			printf("# not refused as expected: '%s'\n", bad[i]);
			all = false;
		}
	}
	CHECK(all, "malformed versions refused, the message names found "
	      "and required versions");

	/* the neighbouring series */
	(void)re_snprintf(v, sizeof(v), "%u.%u.0", maj, min + 1);
	all = refused(v, v);
	(void)re_snprintf(v, sizeof(v), "%u.%u.0", maj + 1, min);
	all &= refused(v, v);
	if (min > 0) {
		(void)re_snprintf(v, sizeof(v), "%u.%u.9", maj, min - 1);
		all &= refused(v, v);
	}
	CHECK(all, "the next minor, the next major and the previous minor "
	      "are refused");

	CHECK(refused(NULL, "(unknown version)"),
	      "no version at all: refused as unknown");

	memset(msg, 'x', sizeof(msg));
	CHECK(libre_ext_version_check("2.0.0", msg, 8) == ENOTSUP &&
	      strlen(msg) == 7, "the message is cut to the buffer");

	printf("1..%d\n", ntest);

	return nfail ? 1 : 0;
}
