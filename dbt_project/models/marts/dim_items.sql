-- `item_text` is the one document every language model sees for an item:
--   "<title>. Genres: <category>, <category>. <description>"
-- (parts that are missing are left out, never invented).
select
    i.item_id,
    i.title,
    i.categories,
    i.description,
    concat_ws(' ',
        i.title || '.',
        case when i.categories <> '' then 'Genres: ' || replace(i.categories, '|', ', ') || '.' end,
        i.description
    ) as item_text,
    coalesce(p.n_interactions, 0) as n_interactions,
    coalesce(t.n_train_interactions, 0) as n_train_interactions,
    p.first_interaction_at
from {{ ref('stg_items') }} as i
left join {{ ref('int_item_popularity') }} as p using (item_id)
left join (
    select item_id, count(*) as n_train_interactions from {{ ref('split_train') }} group by item_id
) as t using (item_id)
