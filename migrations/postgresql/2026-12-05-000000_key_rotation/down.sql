ALTER TABLE server_keys DROP COLUMN retired_at;
ALTER TABLE server_keys DROP COLUMN activated_at;
