// Example: a React hook over OctaviaClient.watch. Copy it next to octavia.js.
//
//   const client = useMemo(() => new OctaviaClient({ token }), [token]);
//   const { job, mode, error } = useJobProgress(client, jobId);
//   return <progress max={100} value={job?.progress_percentage ?? 0} />;

import { useEffect, useState } from "react";

export function useJobProgress(client, jobId, options = {}) {
  const [job, setJob] = useState(null);
  const [mode, setMode] = useState(null); // "stream" or "polling"
  const [error, setError] = useState(null);

  useEffect(() => {
    if (!client || !jobId) return undefined;
    setJob(null);
    setError(null);
    const watch = client.watch(jobId, {
      ...options,
      onUpdate: setJob,
      onMode: setMode,
      onError: setError,
    });
    return () => watch.close(); // unmounting closes the stream: the server stops watching
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [client, jobId]);

  return { job, mode, error, done: Boolean(job && ["completed", "failed", "cancelled"].includes(job.status)) };
}
