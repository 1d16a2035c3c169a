-- Key rotation (`latchkey key rotate`): when a key was made the current one,
-- and when it was retired. An instance whose key file lacks the current key,
-- or whose active key was retired, refuses to start.
ALTER TABLE server_keys ADD COLUMN activated_at BIGINT;
ALTER TABLE server_keys ADD COLUMN retired_at BIGINT;
