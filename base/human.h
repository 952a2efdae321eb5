/* vmferry: sizes and durations as people read them, for messages,
 * summaries and the progress bar.
 */
#ifndef VMFERRY_HUMAN_H
#define VMFERRY_HUMAN_H

#include <stddef.h>
#include <stdint.h>

/* "1.5 GiB", "512 B": binary units, one decimal above KiB. */
void vmferry_human_size (uint64_t bytes, char *buf, size_t len);

/* "1:02:03" or "2:03"; "--:--" for negative (unknown). */
void vmferry_human_duration (double seconds, char *buf, size_t len);

#endif
