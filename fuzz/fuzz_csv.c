/* One line of a requests file (p11net run). Slices returned must lie inside it. */
#include <stdint.h>
#include <stdlib.h>

#include "csv.h"

static void inside(struct p11n_slice s, const uint8_t *p, size_t n)
{
    if (s.len && (s.p < p || s.p + s.len > p + n)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct p11n_csv_line line;
    const char *why = NULL;

    switch (p11n_csv_parse_line(p11n_slice_of(data, size), &line, &why)) {
    case P11N_CSV_REQUEST:
        inside(line.pin, data, size);
        inside(line.data, data, size);
        inside(line.slot_text, data, size);
        if (line.slot_kind == P11N_CSV_SLOT_LABEL && line.label[P11N_CSV_LABEL_MAX] != 0) abort();
        break;
    case P11N_CSV_ERROR:
        if (!why) abort();
        break;
    case P11N_CSV_SKIP:
        break;
    }
    return 0;
}
