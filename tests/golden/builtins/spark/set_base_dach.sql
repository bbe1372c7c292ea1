SELECT
  a.account_id
FROM accounts AS a
WHERE
  a.region = 'DACH'
