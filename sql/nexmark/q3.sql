-- q3, local item suggestion: the auctions in category 10 of sellers in
-- Oregon, Idaho or California (the generator's states are lower case, as in
-- RisingWave's form). A regular join: every person and auction is held for
-- the state's time to live (Flink holds them forever by default; weir asks
-- for a bound).
SET table.exec.state.ttl = '1 day';
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'or' OR P.state = 'id' OR P.state = 'ca')
