-- The expiry indexes of sessions and pending sign-ins cost more than they
-- save. Every sign-in's second step removes a pending sign-in and moves its
-- session to a new key, and every page view moves its session's expiry:
-- each change also rewrote a page of the expiry index (on SQLite's single
-- writer, one more page for each of them; on PostgreSQL, no update of a
-- session could stay on its page). What they served is a scan of two small
-- tables: the purge every 10 minutes and the mail worker's look, on a
-- reader, for unfinished sign-ins, whose rows live 5 minutes
-- (docs/PERFORMANCE.md, "Issue 14, 2026-12-04: pages written per code").
DROP INDEX sessions_expiry;
DROP INDEX pending_sign_ins_expiry;
