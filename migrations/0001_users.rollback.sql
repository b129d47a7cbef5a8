DROP TABLE IF EXISTS users;
DROP FUNCTION IF EXISTS apictl_set_updated_at();
