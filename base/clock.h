/* vmferry: the clock for deadlines and rates. */
#ifndef VMFERRY_CLOCK_H
#define VMFERRY_CLOCK_H

/* Seconds on the monotonic clock, for deadlines and rates: never goes
 * back when the wall clock is set.
 */
double vmferry_monotonic (void);

#endif
