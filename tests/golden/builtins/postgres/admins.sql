SELECT
  u.user_id
FROM users AS u
WHERE
  u.role = 'admin'
