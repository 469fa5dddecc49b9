package server

import (
	"context"

	"github.com/commitlog-go/commitlog/consensus"
	"github.com/commitlog-go/commitlog/transport"
	logv1 "github.com/commitlog-go/commitlog/transport/gen/log/v1"
)

// An idempotent producer's ID belongs to the client that asked for it (the subject of its
// certificate): the leader records it (fsm.KindClaimProducer) before answering InitProducer.
// Another client may neither re-initialise it (which would fence the owner) nor produce under
// it (which would take the owner's next sequence numbers: the owner's batch would then be
// answered "duplicate", and never stored). A producer handed out to a caller without an
// identity, or before owners were recorded, is anyone's, as before.

// initProducer answers InitProducer on the leader: the caller must own a producer it
// re-initialises; a new one is claimed for the caller. A caller with an identity holds claimMu
// from the hand-out to the claim: the ID is known and nobody's in between, and IDs are handed
// out in sequence, so another client producing under the next ID would otherwise land there.
func (s *service) initProducer(ctx context.Context, id uint64) (*logv1.InitProducerResponse, error) {
	subject := callerOf(ctx).subject
	if subject != "" {
		s.claimMu.Lock()
		defer s.claimMu.Unlock()
	}
	if err := s.checkOwner(ctx, id); err != nil {
		return nil, err
	}
	r, err := s.sm.InitProducer(ctx, s.node, id)
	if err != nil {
		return nil, err
	}
	if subject != "" {
		c, err := s.sm.ClaimProducer(ctx, s.node, r.ID, subject)
		if err != nil {
			return nil, err
		}
		if c.Known && c.Owner != subject {
			// Another client claimed the new ID between its hand-out and this claim (it
			// guessed it): this caller must not use it. Asking again hands out another.
			return nil, transport.Errorf(transport.Aborted, "server: producer %d was claimed by another client meanwhile: ask for a new one", r.ID)
		}
	}
	return &logv1.InitProducerResponse{ProducerId: r.ID, Epoch: uint32(r.Epoch)}, nil
}

// checkProducerOwner refuses (PermissionDenied) a produce on producer id by a client other
// than its owner. A produce on an ID nobody owns (yet, or not known here) holds claimMu's read
// lock until release, called once the batch is proposed: a claim under way (initProducer) is
// waited for, and none starts while such a batch is in flight, so a batch under an ID that is
// being claimed is judged against its owner. Owners never change, so an owned ID takes no lock.
func (s *service) checkProducerOwner(ctx context.Context, id uint64) (release func(), err error) {
	release = func() {}
	if id == 0 || s.sm == nil {
		return release, nil
	}
	if owner, known := s.sm.ProducerOwner(id); !known || owner == "" {
		s.claimMu.RLock()
		release = s.claimMu.RUnlock
	}
	// Read again under the lock: a claim that held it has recorded its owner meanwhile.
	if err := s.checkOwner(ctx, id); err != nil {
		release()
		return func() {}, err
	}
	return release, nil
}

// checkOwner refuses (PermissionDenied) a call on producer id by a client other than its
// owner. This replica's table decides when it knows the owner (an owner never changes, an ID
// is never handed out twice). A leader that does not know the ID, or knows it without an
// owner in a term in which it has not caught up yet (elected, it may not have applied the
// claim the last leader committed), catches up first: once per term for IDs it knows. A
// follower that knows no owner answers *consensus.NotLeaderError: the leader decides.
func (s *service) checkOwner(ctx context.Context, id uint64) error {
	if id == 0 || s.sm == nil {
		return nil
	}
	owner, known := s.sm.ProducerOwner(id)
	if owner == "" && !s.node.IsLeader() {
		// Only the leader may judge an ID this replica knows no owner of (its claim may not
		// be applied here yet), and this node could be elected before proposing: the leader
		// decides (the write is forwarded, or the client redirected).
		leader, _ := s.node.Leader()
		return &consensus.NotLeaderError{Leader: leader}
	}
	if owner == "" {
		if term := s.node.Status().Term; !known || s.ownersTerm.Load() != term {
			if err := s.node.LinearizableRead(ctx); err != nil {
				return err
			}
			s.ownersTerm.Store(term)
			owner, _ = s.sm.ProducerOwner(id)
		}
	}
	if owner != "" && owner != callerOf(ctx).subject {
		return transport.Errorf(transport.PermissionDenied, "server: producer %d belongs to another client", id)
	}
	return nil
}
