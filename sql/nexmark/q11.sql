-- q11, user sessions: the bids of each bidder in each of their sessions
-- (bids no more than 10 seconds apart), in the window-TVF form (Flink's
-- session windows, partitioned by bidder).
SELECT bidder, count(*) AS bid_count, window_start AS starttime, window_end AS endtime
FROM session(bid, date_time, INTERVAL '10' SECOND, bidder)
GROUP BY bidder, window_start, window_end
