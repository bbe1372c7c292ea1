WITH admins AS (
  SELECT
    u.user_id
  FROM users AS u
  WHERE
    u.role = 'admin'
)
SELECT
  p.account_id AS account_id,
  COUNT(DISTINCT m.user_id) AS matching_count,
  COUNT(DISTINCT c.user_id) AS total_count
FROM accounts AS p
LEFT JOIN users AS c
  ON c.account_id = p.account_id
LEFT JOIN admins AS m
  ON m.user_id = c.user_id
GROUP BY
  p.account_id
HAVING
  COUNT(DISTINCT m.user_id) >= 1
