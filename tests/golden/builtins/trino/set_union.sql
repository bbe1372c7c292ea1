WITH set_base_big AS (
  SELECT
    a.account_id
  FROM accounts AS a
  WHERE
    a.arr > 10000
), set_base_dach AS (
  SELECT
    a.account_id
  FROM accounts AS a
  WHERE
    a.region = 'DACH'
)
SELECT
  account_id
FROM set_base_dach
UNION
SELECT
  account_id
FROM set_base_big
