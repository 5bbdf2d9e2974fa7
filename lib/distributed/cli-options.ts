/**
 * The options and usage text of `vitmsn worker` and `vitmsn enqueue`, apart from their code so that
 * the CLI's argument parser knows them without loading BullMQ (only those two commands load it).
 */
export const DISTRIBUTED_OPTIONS = {
  redis: { type: 'string' },
  queue: { type: 'string' },
  concurrency: { type: 'string' },
  name: { type: 'string' },
  'output-root': { type: 'string' },
  'lock-duration-ms': { type: 'string' },
  'stalled-interval-ms': { type: 'string' },
  'metrics-port': { type: 'string' },
  'log-interval-s': { type: 'string' },
  'chunk-size': { type: 'string' },
  format: { type: 'string' },
  'job-prefix': { type: 'string' },
  attempts: { type: 'string' },
  inline: { type: 'boolean' },
  recursive: { type: 'boolean', short: 'r' },
  wait: { type: 'boolean' },
} as const;

export const DISTRIBUTED_USAGE = `  vitmsn worker --redis <url> --queue <name> --model <dir> [worker options]   take embedding jobs from a queue
  vitmsn enqueue <images, folders or .txt lists...> --redis <url> --queue <name> [--out <dir>] [--wait]
`;

export const DISTRIBUTED_HELP = `Queue options (vitmsn worker, vitmsn enqueue; Redis with BullMQ):
      --redis <url>          redis://[user:password@]host[:port][/db]
      --queue <name>         queue name (letters, digits, _ . -)
  worker:
      --concurrency <n>      jobs run at once; their images share the model's batches (default 2)
      --name <name>          worker name in logs and results (default host:pid)
      --output-root <dir>    refuse jobs whose output folder is outside it
      --lock-duration-ms <n> job lock time; a dead worker's jobs return to the queue after it (default 30000)
      --stalled-interval-ms <n> how often to look for jobs of dead workers (default 30000)
      --metrics-port <n>     serve Prometheus metrics at http://<host>:<n>/metrics (--host, default 127.0.0.1)
      --log-interval-s <n>   a stats line on stderr every n seconds (default 60; 0 = none)
      --drain-timeout-ms <n> on SIGTERM, finish running jobs for this long, then hand them back (default 30000)
      also --device, --dtype, --threads, --max-batch, --max-delay-ms
  enqueue:
  -o, --out <dir>            output folder on storage every worker sees: <job>.npy|.safetensors shards,
                             <job>.json entries, manifest.json (without it: results come back through
                             Redis, and --wait prints JSON lines)
      --format <f>           npy (default) | safetensors
      --chunk-size <n>       images per job (default 64)
      --job-prefix <p>       job ids <p>-000000…; default: a hash of the submission (the same submission
                             gets the same ids, and finished jobs are not run again)
      --attempts <n>         tries per job before it goes to the failed set (default 5)
      --inline               send the image bytes through Redis (small images; no shared storage needed)
  -r, --recursive            look for images in sub-folders too
      --wait                 wait for the jobs, with a progress bar on stderr; exit 1 if a job failed
      also --pooling, --normalize
`;
