/**
 * server/cli_user.c  `sipstack user add|del|list`: the users table
 *
 * The program's subcommand that manages who may register: adds (or
 * replaces), deletes and lists the users of a database, which a running
 * server sees within a second. Exposes auth_user_cli() in sipstack.h,
 * for server/main.c. Uses the users table of server/registrar/users.c
 * through its public API (registrar.h, USERS: auth_users_open_direct, so
 * no libre loop runs) and the terminal (a password typed without echo).
 */
#include <string.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <termios.h>
#include <openssl/crypto.h>
#include <re.h>
#include "sipstack.h"


static const char *db_default = "sipstack.db";
static const char *realm_default = AUTH_REALM_DEFAULT;


static void cli_usage(FILE *f)
{
	(void)fprintf(f,
	"usage: sipstack user add USER PASSWORD [--realm REALM] [--db PATH]\n"
	"       sipstack user del USER [--db PATH]\n"
	"       sipstack user list [--db PATH]\n"
	"\n"
	"PASSWORD '-' reads it from standard input (so that it does not\n"
	"show in ps). Defaults: --db %s, --realm %s.\n"
	"Only digests are stored (HA1 for MD5 and SHA-256), never the\n"
	"password; a running server sees changes within a second.\n",
	db_default, realm_default);
}


/* SQLite's message about the last failure, else err's */
static const char *sql_msg(const struct auth_users *u, int err)
{
	const char *m = auth_users_errmsg(u);

	return m ? m : strerror(err);
}


/* one line from stdin, without echo when it is a terminal */
static int read_password(char *buf, size_t sz)
{
	struct termios old, noecho;
	bool tty = isatty(STDIN_FILENO);
	size_t n;
	int err = 0;

	if (tty) {
		(void)fputs("Password: ", stderr);
		(void)fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &old) == 0) {
			noecho = old;
			noecho.c_lflag &= ~(tcflag_t)ECHO;
			(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &noecho);
		}
		else {
			tty = false;
		}
	}

	if (!fgets(buf, (int)sz, stdin))
		err = EIO;

	if (tty) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
		(void)fputc('\n', stderr);
	}

	if (err)
		return err;

	n = strlen(buf);
	if (n && buf[n - 1] != '\n' && !feof(stdin))
		return E2BIG;
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';

	return 0;
}


static int cli_print_user(const char *user, const char *realm,
			  int64_t created, void *arg)
{
	char when[32] = "?";
	time_t t = (time_t)created;
	struct tm tm;
	(void)arg;

	if (gmtime_r(&t, &tm))
		(void)strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);

	(void)printf("%s\t%s\t%s\n", user, realm, when);

	return 0;
}


int auth_user_cli(int argc, char *argv[])
{
	const char *db = db_default, *realm = realm_default;
	const char *pos[3] = {NULL, NULL, NULL};
	char pwbuf[AUTH_PASSWORD_MAX + 2];
	char msg[256] = "";
	struct auth_users *u = NULL;
	const char *cmd, *password = NULL;
	int i, npos = 0, rc = 0, err;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
			cli_usage(stdout);
			return 0;
		}
		else if (!strcmp(arg, "--db") || !strcmp(arg, "--realm")) {
			if (i + 1 >= argc) {
				(void)fprintf(stderr, "sipstack user: %s "
					      "needs a value\n", arg);
				return 2;
			}
			if (arg[2] == 'd')
				db = argv[++i];
			else
				realm = argv[++i];
		}
		else if (!strncmp(arg, "--db=", 5)) {
			db = arg + 5;
		}
		else if (!strncmp(arg, "--realm=", 8)) {
			realm = arg + 8;
		}
		else if (arg[0] == '-' && arg[1] == '-') {
			(void)fprintf(stderr, "sipstack user: unknown option "
				      "%s\n", arg);
			cli_usage(stderr);
			return 2;
		}
		else if (npos < (int)ARRAY_SIZE(pos)) {
			pos[npos++] = arg;
		}
		else {
			cli_usage(stderr);
			return 2;
		}
	}

	cmd = pos[0];
	if (!cmd ||
	    (!strcmp(cmd, "add") && npos != 3) ||
	    (!strcmp(cmd, "del") && npos != 2) ||
	    (!strcmp(cmd, "list") && npos != 1) ||
	    (strcmp(cmd, "add") && strcmp(cmd, "del") && strcmp(cmd, "list"))) {
		cli_usage(stderr);
		return 2;
	}

	if (!*db) {
		(void)fprintf(stderr, "sipstack user: empty --db path\n");
		return 2;
	}

	if (!strcmp(cmd, "add")) {
		if (!digest_name_valid(pos[1], AUTH_USER_MAX - 1)) {
			(void)fprintf(stderr, "sipstack user: invalid user "
				      "name (1..%d characters, no control "
				      "characters, '\"' or '\\')\n",
				      AUTH_USER_MAX - 1);
			return 2;
		}
		if (!digest_name_valid(realm, AUTH_REALM_MAX)) {
			(void)fprintf(stderr, "sipstack user: invalid realm "
				      "(1..%d characters, no control "
				      "characters, '\"' or '\\')\n",
				      AUTH_REALM_MAX);
			return 2;
		}

		password = pos[2];
		if (!strcmp(password, "-")) {
			err = read_password(pwbuf, sizeof(pwbuf));
			if (err) {
				(void)fprintf(stderr, "sipstack user: cannot "
					      "read the password from stdin"
					      "%s\n", err == E2BIG ?
					      " (too long)" : "");
				rc = 1;
				goto out;
			}
			password = pwbuf;
		}
		if (!*password || strlen(password) > AUTH_PASSWORD_MAX) {
			(void)fprintf(stderr, "sipstack user: the password "
				      "must have 1..%d characters\n",
				      AUTH_PASSWORD_MAX);
			rc = 2;
			goto out;
		}
	}

	err = auth_users_open_direct(&u, db, msg, sizeof(msg));
	if (err) {
		(void)fprintf(stderr, "sipstack user: cannot open %s: %s\n",
			      db, msg);
		rc = 1;
		goto out;
	}

	if (!strcmp(cmd, "add")) {
		err = auth_user_add(u, pos[1], realm, password);
		if (err) {
			(void)fprintf(stderr, "sipstack user: cannot save "
				      "user %s in %s: %s\n", pos[1], db,
				      sql_msg(u, err));
			rc = 1;
			goto out;
		}
		(void)printf("user %s saved in %s (realm %s)\n", pos[1], db,
			     realm);
	}
	else if (!strcmp(cmd, "del")) {
		err = auth_user_del(u, pos[1]);
		if (err == ENOENT) {
			(void)fprintf(stderr, "sipstack user: no user %s in "
				      "%s\n", pos[1], db);
			rc = 1;
			goto out;
		}
		if (err) {
			(void)fprintf(stderr, "sipstack user: cannot delete "
				      "user %s: %s\n", pos[1],
				      sql_msg(u, err));
			rc = 1;
			goto out;
		}
		(void)printf("user %s deleted from %s\n", pos[1], db);
	}
	else {
		err = auth_user_list(u, cli_print_user, NULL);
		if (err) {
			(void)fprintf(stderr, "sipstack user: cannot list "
				      "users: %s\n", sql_msg(u, err));
			rc = 1;
			goto out;
		}
	}

 out:
	OPENSSL_cleanse(pwbuf, sizeof(pwbuf));
	mem_deref(u);

	return rc;
}

