/* sqlite.c: a program linked against the host's libsqlite3, for the
 * --closure tests: it computes with SQLite, says how it sees itself, and
 * can run another program (a host program, which must keep the host's
 * libraries), or print the files its process has mapped whose path
 * contains a string. */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc > 2 && !strcmp(argv[1], "exec")) {
		execv(argv[2], argv + 2);
		perror(argv[2]);
		return 127;
	}
	if (argc > 2 && !strcmp(argv[1], "maps")) {
		FILE *f = fopen("/proc/self/maps", "r");
		char line[4096], last[4096] = "";
		while (f && fgets(line, sizeof line, f)) {
			char *p = strchr(line, '/');
			if (p && strstr(p, argv[2]) && strcmp(p, last)) {
				strcpy(last, p);
				fputs(p, stdout);
			}
		}
		return 0;
	}
	sqlite3 *db;
	sqlite3_stmt *st;
	if (sqlite3_open(":memory:", &db) || sqlite3_prepare_v2(db, "select 6*7", -1, &st, 0) ||
	    sqlite3_step(st) != SQLITE_ROW)
		return 1;
	char exe[4096] = "";
	if (readlink("/proc/self/exe", exe, sizeof exe - 1) < 0)
		strcpy(exe, "?");
	printf("sqlite=%d exe=%s argv0=%s\n", sqlite3_column_int(st, 0), exe, argv[0]);
	return 0;
}
