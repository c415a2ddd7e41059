-- Which depth bucket a message is in, from its stored state and round.
local function bucket(state, round)
  if state == 'dead' then return 'dead' end
  if round == '0' then return 'pending' end
  return 'scheduled'
end
