/**
 * test/fuzz/replay.c  The fuzz harness as a plain program: replays files
 *
 * Usage: fuzz_replay PATH...  (files, or folders whose files are read
 * in name order). Each file is one datagram for fuzz_sip_one(), run
 * once, as libFuzzer would run it; prints TAP, one line per file. A
 * finding that comes back crashes the program (or, under valgrind or
 * the ASan build of `make asan`, is reported there), so the test fails.
 * Built with gcc by the normal build: `make test` needs no clang.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "fuzz_sip.h"


static int ntest;


static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}


static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		printf("not ok %d - %s: %s\n", ++ntest, path, strerror(errno));
		if (f)
			fclose(f);
		return;
	}

	/* exactly n bytes on the heap, as libFuzzer hands them */
	buf = malloc(n ? (size_t)n : 1);
	if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
		printf("not ok %d - %s: cannot read\n", ++ntest, path);
	}
	else {
		(void)fuzz_sip_one(buf, (size_t)n);
		printf("ok %d - %s (%ld bytes)\n", ++ntest, path, n);
	}
	fflush(stdout);
	free(buf);
	fclose(f);
}


static void replay_dir(const char *dir)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, i;
	DIR *d = opendir(dir);

	if (!d) {
		printf("not ok %d - %s: %s\n", ++ntest, dir, strerror(errno));
		return;
	}

	while ((de = readdir(d))) {
		char **nn;

		if (de->d_name[0] == '.' || !strcmp(de->d_name, "README.md"))
			continue;
		nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn)
			break;
		names = nn;
		names[n] = malloc(strlen(dir) + strlen(de->d_name) + 2);
		if (!names[n])
			break;
		sprintf(names[n++], "%s/%s", dir, de->d_name);
	}
	closedir(d);

	qsort(names, n, sizeof(*names), cmp);
	for (i = 0; i < n; i++) {
		replay_file(names[i]);
		free(names[i]);
	}
	free(names);
}


int main(int argc, char *argv[])
{
	int i;

	if (fuzz_sip_init()) {
		printf("Bail out! set-up failed\n");
		return 1;
	}

	for (i = 1; i < argc; i++) {
		struct stat st;

		if (!stat(argv[i], &st) && S_ISDIR(st.st_mode))
			replay_dir(argv[i]);
		else
			replay_file(argv[i]);
	}

	fuzz_sip_close();
	printf("1..%d\n", ntest);

	return 0;
}
