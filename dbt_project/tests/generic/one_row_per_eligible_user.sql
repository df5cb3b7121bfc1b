{#- Exactly one held-out row for every user with >= 3 events, and none for anyone else. Returns offending users. -#}
{% test one_row_per_eligible_user(model) %}
with expected as (
    select user_id from {{ ref('int_user_sequences') }} where n_interactions >= 3
),
actual as (
    select user_id, count(*) as n_rows from {{ model }} group by user_id
)
select coalesce(e.user_id, a.user_id) as user_id, coalesce(a.n_rows, 0) as n_rows
from expected as e
full outer join actual as a using (user_id)
where e.user_id is null or a.user_id is null or a.n_rows <> 1
{% endtest %}
