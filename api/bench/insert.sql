INSERT INTO visits (task_id, client_ip, user_agent, page) VALUES ('pgbench', '127.0.0.1', 'pgbench', '/bench');
