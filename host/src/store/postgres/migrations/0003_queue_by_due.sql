-- wasmhook schema 3: the queue loses `queue_by_due`, which no statement needs (a claim reads
-- `queue_unclaimed`). With delivery ids as its second column, the planner could use it to
-- find rows by id: with the statistics of a drained queue it did, for the claim's update and
-- finishing's delete, walking the whole index (1.4 s for 1,000 of 20,000 entries instead of
-- 19 ms by primary key). Every entry written also wrote it.
DROP INDEX IF EXISTS queue_by_due;
