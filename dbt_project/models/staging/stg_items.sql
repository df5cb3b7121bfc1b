select
    item_id,
    trim(title) as title,
    coalesce(categories, '') as categories,
    nullif(trim(description), '') as description,
    batch_id
from {{ source('raw', 'items') }}
