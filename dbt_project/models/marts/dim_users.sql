-- Every user who has events, with attributes when the source provides them (NULL otherwise).
select
    s.user_id,
    u.gender,
    u.age_bracket,
    u.occupation,
    s.n_interactions,
    case
        when s.n_interactions < 20 then 'light'
        when s.n_interactions < 100 then 'medium'
        else 'heavy'
    end as activity_level,
    s.n_interactions >= 3 as is_evaluated,
    s.first_interaction_at,
    s.last_interaction_at
from {{ ref('int_user_sequences') }} as s
left join {{ ref('stg_users') }} as u using (user_id)
