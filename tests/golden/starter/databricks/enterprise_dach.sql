SELECT
  a.account_id,
  a.name,
  a.country,
  a.employees
FROM accounts AS a
WHERE
  a.region IN ('DACH') AND a.employees >= 1000 AND a.status = 'customer'
