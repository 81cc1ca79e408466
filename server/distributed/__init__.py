"""Scale-out on PostgreSQL: jobs queued with procrastinate, events relayed by LISTEN/NOTIFY.

API replicas store a job and enqueue its task in one transaction; `octavia worker`
processes run the same JobExecutor the embedded mode uses; every replica's EventRelay
turns NOTIFYs of new events into reads of the event log and hands them to its watchers.
"""
