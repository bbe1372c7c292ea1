WITH power_users AS (
  SELECT
    e.user_id,
    COUNT(DISTINCT CAST(e.occurred_at AS DATE)) AS active_days
  FROM events AS e
  WHERE
    (
      e.occurred_at >= CAST('2026-10-25' AS DATE)
      AND e.occurred_at < CAST('2026-11-24' AS DATE)
    )
  GROUP BY
    e.user_id
  HAVING
    COUNT(DISTINCT CAST(e.occurred_at AS DATE)) >= 12
)
SELECT
  p.account_id AS account_id,
  COUNT(DISTINCT m.user_id) AS matching_count,
  COUNT(DISTINCT c.user_id) AS total_count
FROM accounts AS p
LEFT JOIN users AS c
  ON c.account_id = p.account_id
LEFT JOIN power_users AS m
  ON m.user_id = c.user_id
GROUP BY
  p.account_id
HAVING
  COUNT(DISTINCT m.user_id) >= 3
