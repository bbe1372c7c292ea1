WITH set_base_dach AS (
  SELECT
    a.account_id
  FROM accounts AS a
  WHERE
    a.region = 'DACH'
)
SELECT
  b.account_id,
  b.account_id AS same_id
FROM set_base_dach AS b
