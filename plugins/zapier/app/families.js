// The event families wasmhook's triggers are grouped by: one Zapier trigger each. A family's
// sample event is what `performList` runs through wasmhook's own zapier connector (preview),
// so the Zap editor shows exactly the fields a live delivery carries.

const family = (key, noun, events, currentValue) => ({
  key,
  noun,
  events,
  sampleEvent: {
    id: `evt_sample_${key}`,
    event: events[0],
    companyId: 'company_sample',
    projectId: 'project_sample',
    userId: 'user_sample',
    currentValue,
    previousValue: null,
  },
  // Static fields for Zapier's `sample` (shown before the first live event): the connector's
  // flat keys for the sample event above.
  sample: {
    id: `evt_sample_${key}`,
    event: events[0],
    company__id: 'company_sample',
    project__id: 'project_sample',
    user__id: 'user_sample',
    current_value__id: currentValue.id,
  },
});

const prefixed = (prefix, names) => names.map((name) => `${prefix}${name}`);

module.exports = [
  family(
    'todo',
    'Todo',
    prefixed('TODO_', [
      'CREATED', 'DELETED', 'MOVED', 'NAME_CHANGED', 'DONE_STATUS_UPDATED', 'DUE_DATE_ADDED',
      'DUE_DATE_UPDATED', 'DUE_DATE_REMOVED', 'ASSIGNEE_ADDED', 'ASSIGNEE_REMOVED', 'TAG_ADDED',
      'TAG_REMOVED', 'CUSTOM_FIELD_UPDATED',
    ]),
    { id: 'todo_1', title: 'Draft the launch announcement', done: false, todoList: { id: 'list_1', title: 'Marketing' } },
  ),
  family(
    'checklist',
    'Checklist',
    prefixed('TODO_CHECKLIST_', ['CREATED', 'NAME_CHANGED', 'DELETED']),
    { id: 'checklist_1', title: 'Launch day', todo: { id: 'todo_1', title: 'Draft the launch announcement' } },
  ),
  family(
    'checklist_item',
    'Checklist Item',
    prefixed('TODO_CHECKLIST_ITEM_', [
      'CREATED', 'NAME_CHANGED', 'DELETED', 'DUE_DATE_ADDED', 'DUE_DATE_UPDATED', 'DUE_DATE_REMOVED',
      'ASSIGNEE_ADDED', 'ASSIGNEE_REMOVED', 'DONE_STATUS_UPDATED',
    ]),
    { id: 'item_1', title: 'Publish the blog post', done: false, checklist: { id: 'checklist_1', title: 'Launch day' } },
  ),
  family(
    'todo_list',
    'Todo List',
    prefixed('TODO_LIST_', ['CREATED', 'DELETED', 'NAME_CHANGED']),
    { id: 'list_1', title: 'Marketing', position: 1 },
  ),
  family(
    'custom_field',
    'Custom Field',
    prefixed('CUSTOM_FIELD_', ['CREATED', 'DELETED', 'UPDATED']),
    { id: 'cf_1', name: 'Stage', type: 'SELECT_SINGLE' },
  ),
  family('tag', 'Tag', prefixed('TAG_', ['CREATED', 'DELETED', 'UPDATED']), { id: 'tag_1', title: 'Urgent', color: '#ef4444' }),
  family(
    'comment',
    'Comment',
    prefixed('COMMENT_', ['CREATED', 'DELETED', 'UPDATED']),
    { id: 'comment_1', text: 'Pricing page copy is ready for review.', todo: { id: 'todo_1', title: 'Draft the launch announcement' } },
  ),
];
