/* ipservice: the C service of parker's README example. It loads its asset
 * file assets/ipv4.ipdb ("PREFIX LOCATION" lines, relative to the directory
 * it was started in), listens on 127.0.0.1:PORT (--port PORT) and answers
 * each connection's one-line IP address with the location of the longest
 * matching prefix. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXENT 64

static char prefix[MAXENT][64], where[MAXENT][64];
static int n;

int main(int argc, char **argv) {
	if (argc != 3 || strcmp(argv[1], "--port")) {
		fprintf(stderr, "usage: ipservice --port PORT\n");
		return 2;
	}
	const char *port = argv[2];
	FILE *db = fopen("assets/ipv4.ipdb", "r");
	if (!db) {
		perror("ipservice: assets/ipv4.ipdb");
		return 1;
	}
	while (n < MAXENT && fscanf(db, "%63s %63s", prefix[n], where[n]) == 2)
		n++;
	fclose(db);

	int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(port))};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) {
		perror("ipservice: listen");
		return 1;
	}
	printf("ipservice: %d entries, listening on 127.0.0.1:%s\n", n, port);
	fflush(stdout);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		char ip[64] = {0};
		ssize_t k = read(c, ip, sizeof ip - 1);
		if (k > 0) {
			ip[strcspn(ip, "\r\n")] = 0;
			const char *best = "unknown";
			size_t bestlen = 0;
			for (int i = 0; i < n; i++) {
				size_t l = strlen(prefix[i]);
				if (l > bestlen && !strncmp(ip, prefix[i], l))
					best = where[i], bestlen = l;
			}
			dprintf(c, "%s %s\n", ip, best);
		}
		close(c);
	}
}
