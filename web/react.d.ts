// Types for web/react.js.
import type { ReactNode, ReactElement } from 'react';
import type { Client, ConnectionState, EvstreamEvent, ControlEvent } from './evstream.js';

export declare function EventsProvider(props: { client: Client; children?: ReactNode }): ReactElement;
export declare function useEventsClient(): Client;
export declare function useEvents(pattern: string, callback: (event: EvstreamEvent | ControlEvent) => void): void;
export declare function useConnectionState(): ConnectionState;
