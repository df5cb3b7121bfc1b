select
    user_id,
    nullif(trim(gender), '') as gender,
    nullif(trim(age_bracket), '') as age_bracket,
    nullif(trim(occupation), '') as occupation,
    batch_id
from {{ source('raw', 'users') }}
