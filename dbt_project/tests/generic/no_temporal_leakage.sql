{#- A user's test event is never earlier than any of their train or valid events. Returns offending users. -#}
{% test no_temporal_leakage(model) %}
with history as (
    select user_id, event_ts, position from {{ ref('split_train') }}
    union all
    select user_id, event_ts, position from {{ ref('split_valid') }}
)
select t.user_id, t.event_ts as test_ts, max(h.event_ts) as latest_history_ts
from {{ model }} as t
join history as h using (user_id)
group by t.user_id, t.event_ts, t.position
having max(h.event_ts) > t.event_ts or max(h.position) >= t.position
{% endtest %}
