/* vmferry: an ordered worker pipeline.
 *
 * The shape of both the exporter and the importer: one thread produces
 * jobs in order (reading a disk, or reading a stream), a pool of workers
 * processes them in any order and in parallel (compressing, or
 * decompressing and writing), and a collector thread finishes them strictly
 * in the order they were produced (writing records, verifying a file once
 * all of its data is written).  Jobs live in a fixed ring of slots whose
 * buffers are allocated once, so memory stays flat whatever the disk size.
 */
#ifndef VMFERRY_PIPELINE_H
#define VMFERRY_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>

struct vmferry_pipeline;

struct vmferry_pipeline_ops {
  /* Called once per slot at creation and at destruction, e.g. to
   * allocate its buffers.  init returns -1 with the error set.
   */
  int (*init) (void *opaque, void *job);
  void (*fini) (void *opaque, void *job);
  /* In a worker thread, for jobs submitted with work = true. */
  int (*work) (void *opaque, void *job, unsigned worker);
  /* In the collector thread, in submission order. */
  int (*done) (void *opaque, void *job);
};

/* WORKERS threads, DEPTH slots of JOB_SIZE bytes each (zeroed, then init).
 * Returns NULL with the error set.
 */
struct vmferry_pipeline *
vmferry_pipeline_new (const struct vmferry_pipeline_ops *ops, void *opaque,
                      unsigned workers, unsigned depth, size_t job_size);

/* The producer's next slot, waiting for one to be free.  NULL if the
 * pipeline has failed, with the failed job's error set in the producer's
 * thread too (vmferry_pipeline_finish sets it again), so that no older
 * message of the producer's stands for it.
 */
void *vmferry_pipeline_slot (struct vmferry_pipeline *p);

/* Call STALL (OPAQUE, true) in the producer's thread when it is about to
 * wait for a free slot, and STALL (OPAQUE, false) when it has one: the
 * stages after it are the bottleneck then, and whatever the producer
 * reads from (a disk) is idle.  Set before the first slot is taken.
 */
void vmferry_pipeline_on_stall (struct vmferry_pipeline *p,
                                void (*stall) (void *opaque, bool waiting),
                                void *opaque);

/* Hand the slot from vmferry_pipeline_slot on: to a worker if WORK, else
 * straight to the collector.
 */
void vmferry_pipeline_submit (struct vmferry_pipeline *p, void *job, bool work);

/* Stop the pipeline because the producer failed; the producer's own error
 * stays the one reported.
 */
void vmferry_pipeline_abort (struct vmferry_pipeline *p);

/* Wait until every submitted job is done (or the first failure), stop the
 * threads.  Returns 0, or -1 with the first failure's error set in the
 * calling thread.  Call exactly once.
 */
int vmferry_pipeline_finish (struct vmferry_pipeline *p);

/* Free the slots (fini) and the pipeline; after finish.  NULL is fine. */
void vmferry_pipeline_free (struct vmferry_pipeline *p);

/* Worker count for "--threads" unset: the online CPUs, at least 1. */
unsigned vmferry_default_threads (void);

/* Slots are VMFERRY_CHUNK_SIZE buffers: this many at most keep memory
 * flat whatever --threads says.
 */
#define VMFERRY_PIPELINE_MAX_DEPTH 12

/* The shape for --threads THREADS (0: one per CPU): two slots per worker
 * and two more, so workers stay busy while the collector finishes a job,
 * at most VMFERRY_PIPELINE_MAX_DEPTH; and no more workers than slots (one
 * without a slot to work on would only hold memory, a zstd context).
 */
void vmferry_pipeline_shape (unsigned threads, unsigned *workers_rtn,
                             unsigned *depth_rtn);

#endif
