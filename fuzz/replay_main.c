/* Replays every file of a corpus directory through a fuzz harness: how the harnesses
 * run as ordinary CTest tests (label "fuzz") without libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int files = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        struct dirent *e;
        if (!d) {
            fprintf(stderr, "cannot open %s\n", argv[a]);
            return 1;
        }
        while ((e = readdir(d))) {
            char path[4096];
            FILE *f;
            uint8_t *buf;
            long n;
            if (e->d_name[0] == '.') continue;
            snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
            if (!(f = fopen(path, "rb"))) continue;
            fseek(f, 0, SEEK_END);
            n = ftell(f);
            fseek(f, 0, SEEK_SET);
            buf = malloc(n > 0 ? (size_t)n : 1);
            if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
            fclose(f);
            LLVMFuzzerTestOneInput(buf, n > 0 ? (size_t)n : 0);
            free(buf);
            files++;
        }
        closedir(d);
    }
    printf("%d passed, 0 failed\n", files);
    return files > 0 ? 0 : 1;
}
