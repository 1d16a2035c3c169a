-- Only signed-in sessions are looked up by user (revoke, end, list,
-- count: each `user_id = ?`, which such an index serves). A session
-- waiting for its second step, or a visitor's, has no user; indexing them
-- too cost a page change on every sign-in's second step, when its pending
-- session goes (docs/PERFORMANCE.md, "Issue 14: the writer's work per code").
DROP INDEX sessions_user;
CREATE INDEX sessions_user ON sessions (user_id) WHERE user_id IS NOT NULL;
