-- q4, average price per category: the average of the winning bids (an
-- auction's highest bid before it expires) of each category. A regular join
-- (rows held for the state's time to live), an aggregation of its rows by
-- auction, whose results are updates, and an aggregation of those updates by
-- category, which takes back an auction's old winning bid as a new one comes.
SET table.exec.state.ttl = '1 day';
SELECT Q.category, AVG(Q.final)
FROM (
  SELECT MAX(B.price) AS final, A.category
  FROM auction A, bid B
  WHERE A.id = B.auction AND B.date_time BETWEEN A.date_time AND A.expires
  GROUP BY A.id, A.category
) Q
GROUP BY Q.category
