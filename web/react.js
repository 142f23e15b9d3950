// React bindings for the evstream client (no JSX, so it needs no build step).
//
//   <EventsProvider client={connect({...})}> ... </EventsProvider>
//   useEvents('document:*', (event) => ...);      // subscribe for the component's lifetime
//   const state = useConnectionState();            // 'connecting' | 'open' | 'closed'
import { createContext, createElement, useContext, useEffect, useRef, useState } from 'react';

const EventsContext = createContext(null);

export function EventsProvider({ client, children }) {
  return createElement(EventsContext.Provider, { value: client }, children);
}

export function useEventsClient() {
  const client = useContext(EventsContext);
  if (!client) throw new Error('useEvents must be used inside <EventsProvider client={...}>');
  return client;
}

// Calls the latest `callback` for every event matching `pattern`; resubscribes only when the
// pattern or the client changes, so an inline arrow function does not churn subscriptions.
export function useEvents(pattern, callback) {
  const client = useEventsClient();
  const latest = useRef(callback);
  useEffect(() => {
    latest.current = callback;
  });
  useEffect(() => client.subscribe(pattern, (event) => latest.current(event)), [client, pattern]);
}

export function useConnectionState() {
  const client = useEventsClient();
  const [state, setState] = useState(client.connectionState);
  useEffect(() => {
    setState(client.connectionState);
    return client.onStateChange(setState);
  }, [client]);
  return state;
}
