-- A name the user gave the device at login ("Alice's laptop"), shown in session lists.
ALTER TABLE sessions ADD COLUMN device_name TEXT;
